"""`raysched bench`: raysched next to plain Ray, measured side by side in one run.

`compare` drives the fresh drivers and tabulates them; `plain` is the plain-Ray driver it spawns.
"""
