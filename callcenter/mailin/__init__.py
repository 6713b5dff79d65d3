"""E-mail in: messages to a tenant's mailbox become tickets (channel ``email``). ``rules.py``
is pure (config, reading a message, the reply's text), ``store.py`` keeps the messages seen
(Message-ID, sender, ticket), ``intake.py`` is the SMTP/LMTP server (aiosmtpd) the province's
mail server relays the tenant's address to."""
