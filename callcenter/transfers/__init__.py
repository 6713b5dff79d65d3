"""Transfers of a bridged caller to a level-2 unit's hotline.

``rules`` (pure): who may be dialled and what is refused; ``http``: the console's transfer API.
The call machine's transfer phases live with the call machine; the ARI side in ``ari_app``.
"""
