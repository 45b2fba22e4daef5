from . import test_webhook
from . import test_reply
from . import test_hub
from . import test_account
from . import test_browser
