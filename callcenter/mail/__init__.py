"""Mail: the outbox (one row per mail before any server sees it), the SMTP sender and
dispatcher, and the scheduler that mails the tenants' daily ... quarterly reports."""
