# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from . import test_tenant
from . import test_credential
from . import test_security
from . import test_settings
from . import test_integrator_api
from . import test_audit
from . import test_metrics
from . import test_browser
