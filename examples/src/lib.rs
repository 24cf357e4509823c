//! Examples of crm; see the `[[example]]` targets.
