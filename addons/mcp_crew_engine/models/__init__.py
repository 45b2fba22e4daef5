from . import mcp_credential
from . import mcp_crew_config_mixin
from . import mcp_tenant
from . import mcp_tenant_faq
from . import mcp_crew
from . import mcp_agent
from . import mcp_crew_run
from . import mcp_integrator
