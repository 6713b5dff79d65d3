"""Open311 GeoReport v2 at ``/open311/v2/``: the tenant's fields as services, tickets as
service requests (read without a key, personal data never shown), new requests from third-party
apps holding a key (``callcenter open311 key ...``)."""
