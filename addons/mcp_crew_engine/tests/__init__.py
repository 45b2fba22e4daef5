from . import test_config
from . import test_ask
from . import test_running
from . import test_without_llm
from . import test_faults
from . import test_browser
