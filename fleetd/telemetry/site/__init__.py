"""The site page at ``/``: the fleet at a glance in a browser, served by fleetd itself (``page``)."""
