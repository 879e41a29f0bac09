"""bootbench: cold-start benchmark of speech-to-speech services, as a Locust test suite.

    locust --headless -u 1 -i 100            # 100 iterations against the embedded reference server
    locust --headless -u 1 -i 100 -H wss://sts.aivoco.on.cloud.vispark.in
"""

from bootbench import events  # noqa: F401  (registers bootbench's options and event hooks)
from bootbench.user import BootUser  # noqa: F401
