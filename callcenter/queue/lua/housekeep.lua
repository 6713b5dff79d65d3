return housekeep()
