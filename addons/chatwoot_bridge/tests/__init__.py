from . import test_webhook
from . import test_reply
