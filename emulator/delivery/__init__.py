"""Delivery: callbacks from the outbox to the merchant (the dispatcher, the sender, and the hand-over of
a first attempt from the request that queued it)."""
