from . import mcp_endpoint
from . import channel_webhook
from . import channel_oauth
