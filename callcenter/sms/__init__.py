"""SMS to citizens and units: the outbox's dispatcher, Kannel (bearerbox + smsbox), reports."""
