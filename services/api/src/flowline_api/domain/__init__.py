"""The api's domains, one folder per resource noun, each with its routes, service and request bodies."""
