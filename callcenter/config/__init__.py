"""The hotline's configuration: typed model, parsing, the file, live reload, edits, secrets.

Pure: ``model`` (frozen dataclasses), ``base`` (the collecting parser and its error) and ``parse``
(YAML data -> ``HotlineConfig``). Adapters: ``file`` (reading), ``live`` (reload on change or
SIGHUP, old config kept on error), ``edit`` (the console's shift edits), ``secrets`` (ARI/AMI and
SIP passwords) and ``settings`` (process settings from the environment).
"""
