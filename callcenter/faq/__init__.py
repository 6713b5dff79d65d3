"""The FAQ knowledge base: department sheets read (``sheets``), parsed (``rules``, pure), stored
per version (``store``), searched (``search``, pure) and managed (``cli``).
"""
