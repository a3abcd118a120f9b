"""The HTTP edge: the aiohttp app and its routes, the browser and telephony doors, auth, limits,
sessions and the REST API. The only package of voicebot that imports aiohttp (tests/test_layering.py
holds it); everything below it runs without a web server."""
