"""Process code: programs a run starts and watches (Redis; Asterisk is in pbx/, Kannel in sms/)."""
