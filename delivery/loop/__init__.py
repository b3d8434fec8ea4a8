"""The clinic's side: receipts, the outbox, webhooks and FHIR."""
