"""ToyVoice for bootbench: an example provider plugin.

ToyVoice is a made-up speech-to-speech service with a small JSON-over-WebSocket protocol (:mod:`toyvoice.wire`).
The package gives bootbench two things, each through an entry point (pyproject.toml):

- ``toyvoice.driver.ToyVoiceDriver`` (group ``bootbench.providers``): ``locust ... --provider toyvoice``;
- ``toyvoice.server.build`` (group ``bootbench.server_protocols``): the reference server emulates ToyVoice, so a
  run without ``-H`` has a service to measure, and the driver can be tested against ground truth.
"""
