"""The baseline: a typical Python Lambda doing the same DynamoDB work as crm's bootstrap.

GET /customers/{id} from an API Gateway HTTP API (payload 2.0) event: one GetItem on the same
table layout, answered as a proxy response. The boto3 resource is built at import time (the init
phase), as typical Python handlers do.
"""

import json
import os

import boto3

TABLE = boto3.resource("dynamodb").Table(os.environ["CRM_TABLE_NAME"])


def handler(event, _context):
    customer_id = event.get("rawPath", "").rsplit("/", 1)[-1]
    item = TABLE.get_item(Key={"pk": "CUSTOMER#" + customer_id}, ConsistentRead=True).get("Item")
    if item is None:
        return {"statusCode": 404, "body": ""}
    item.pop("pk", None)
    item.pop("kind", None)
    item.pop("emailKey", None)
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(item, default=str),
    }
