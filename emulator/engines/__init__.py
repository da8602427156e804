"""The rule engines the service runs: the payer's checkout, scenarios, request validation against
schemas/, and the lenient JSON reader."""
