"""What Flowline is about: definitions, templates, actions, agents, starts, commands, principals."""
