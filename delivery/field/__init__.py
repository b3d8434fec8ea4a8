"""The driver's side: route links and confirmations from the door."""
