"""IVR: menus, the FAQ knowledge base (sheets, CLI) and prompts."""
