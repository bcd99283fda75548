"""The simulated cloud's HTTP layer (moto's ``responses.py``/``urls.py``): parse a request, call a backend
(``tools.m365sim.backends``), render the service's wire shape. Nothing here keeps state of its own."""
