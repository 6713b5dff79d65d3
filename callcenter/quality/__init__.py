"""Quality review of operators' answers: recordings played in the console, a weekly sample of
calls per operator, a scoring form and a per-operator report."""
