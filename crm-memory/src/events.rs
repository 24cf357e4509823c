//! The store's change events, handed to its subscribers in commit order.

use crm_domain::events::CustomerEvent;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// The senders of the store's subscriptions. Held inside the store's state, so that every write
/// sends its event while it holds the lock: the order subscribers see is the order of commits.
#[derive(Debug, Default)]
pub(crate) struct Subscribers(Vec<UnboundedSender<CustomerEvent>>);

impl Subscribers {
    pub(crate) fn subscribe(&mut self) -> Subscription {
        let (sender, receiver) = unbounded_channel();
        self.0.push(sender);
        Subscription(receiver)
    }

    /// Sends the event `make` makes to every subscriber, and forgets those that are gone. Without
    /// subscribers the event is not even made: a write then costs what it did before events.
    pub(crate) fn publish(&mut self, make: impl FnOnce() -> CustomerEvent) {
        if self.0.is_empty() {
            return;
        }
        let event = make();
        self.0.retain(|sender| sender.send(event.clone()).is_ok());
    }
}

/// The events of every change a store commits after [`subscribe`], in commit order.
///
/// Events wait in the subscription until they are read, however many (the queue is unbounded: no
/// event is ever dropped); dropping the subscription ends it.
///
/// ```
/// # tokio_test(async {
/// use crm_domain::events::EventType;
/// use crm_domain::{Customer, CustomerId, CustomerRepository, NewCustomer, Timestamp};
/// use crm_memory::InMemoryCustomerRepository;
///
/// let store = InMemoryCustomerRepository::new();
/// let mut events = store.subscribe();
/// let input = NewCustomer::from_json(&serde_json::json!({"firstName": "Ada", "lastName": "Lovelace"}))?;
/// store.create(&Customer::create(input, CustomerId::generate(), Timestamp::now())).await?;
/// let event = events.recv().await.expect("the store is alive");
/// assert_eq!(event.kind, EventType::Created);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # });
/// # fn tokio_test<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
///
/// [`subscribe`]: crate::InMemoryCustomerRepository::subscribe
#[derive(Debug)]
pub struct Subscription(UnboundedReceiver<CustomerEvent>);

impl Subscription {
    /// The next event, waiting for one if none is queued; `None` once the store is dropped and
    /// every event it sent was read.
    pub async fn recv(&mut self) -> Option<CustomerEvent> {
        self.0.recv().await
    }

    /// The next event if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<CustomerEvent> {
        self.0.try_recv().ok()
    }

    /// Every event queued now, in order, without waiting.
    pub fn drain(&mut self) -> Vec<CustomerEvent> {
        std::iter::from_fn(|| self.try_recv()).collect()
    }
}
