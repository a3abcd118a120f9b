"""`voicebot bench`, the load generator operators size machines with, and the loopback fakes
it can serve providers from. A client of the server: it never imports the server's code."""
