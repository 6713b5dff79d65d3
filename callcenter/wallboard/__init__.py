"""The supervisors' wallboard: today's figures (``kpis``, pure) and the live page (``http``)."""
