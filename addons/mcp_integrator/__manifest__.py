# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
{
    "name": "MCP Integrator",
    "summary": "Tenants, credentials, Redis cache, internal API, audit and metrics "
    "for the AI customer-service suite",
    "version": "19.0.1.1.0",
    "category": "Productivity/Discuss",
    "website": "https://github.com/mcp-odoo-suite/mcp-odoo-suite",
    "author": "MCP Odoo Suite contributors",
    "license": "LGPL-3",
    "application": True,
    "installable": True,
    "depends": ["base", "mail", "base_setup", "queue_job"],
    "external_dependencies": {"python": ["redis"]},
    "data": [
        "security/mcp_integrator_groups.xml",
        "security/ir.model.access.csv",
        "security/mcp_tenant_security.xml",
        "security/mcp_audit_security.xml",
        "data/mcp_service_data.xml",
        "data/ir_cron_data.xml",
        "views/mcp_integrator_menus.xml",
        "views/mcp_tenant_views.xml",
        "views/mcp_credential_views.xml",
        "views/mcp_audit_log_views.xml",
        "views/mcp_metric_daily_views.xml",
        "views/res_config_settings_views.xml",
    ],
    "assets": {
        "web.assets_tests": [
            "mcp_integrator/static/tests/tours/*.js",
        ],
    },
}
