/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0). */
import { registry } from "@web/core/registry";
import { stepUtils } from "@web_tour/tour_utils";

// An admin opens the app, creates a tenant from the Configuration menu and sees whether it is open.
registry.category("web_tour.tours").add("mcp_integrator_tenant_tour", {
    steps: () => [
        ...stepUtils.goToAppSteps("mcp_integrator.menu_mcp_root", "Open AI Integration"),
        {
            trigger: ".o_main_navbar [data-menu-xmlid='mcp_integrator.menu_mcp_configuration']",
            run: "click",
        },
        {
            trigger: ".dropdown-item[data-menu-xmlid='mcp_integrator.menu_mcp_tenant']",
            run: "click",
        },
        { trigger: ".o_list_button_add", run: "click" },
        { trigger: ".o_field_widget[name=name] input", run: "edit Loja Tour" },
        { trigger: ".o_field_widget[name=code] input", run: "edit loja-tour" },
        { trigger: ".o_field_widget[name=account_id] input", run: "edit 4242" },
        { trigger: ".o_notebook .nav-link:contains(Services)", run: "click" },
        { trigger: ".o_field_widget[name=service_ids] label:contains(Orders)", run: "click" },
        ...stepUtils.saveForm(),
        { trigger: ".o_form_view .badge:contains(Closed now)" },
    ],
});

// The Settings screen's AI Integration block tests the Redis connection and reports the latency.
registry.category("web_tour.tours").add("mcp_integrator_settings_tour", {
    steps: () => [
        { trigger: ".app_settings_block[data-key=mcp_integrator]" },
        { trigger: "button[name=action_mcp_test_connection]", run: "click" },
        { trigger: ".o_notification:contains(Redis connection works):contains(ms)" },
    ],
});
