/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0). */
import { browser } from "@web/core/browser/browser";
import { registry } from "@web/core/registry";
import { stepUtils } from "@web_tour/tour_utils";

// The test that starts this tour creates the tenant "Loja Tour" with its credentials and the
// crew "Vendas", and a fake Chatwoot (tests/test_browser.py).
const TENANT = "Loja Tour";
// The fake listens on a random port: the test passes its URL in the start URL's query. Read
// when this file loads: opening a menu rewrites the URL without it.
const CHATWOOT_URL = new URLSearchParams(browser.location.search).get("chatwoot_url");

function pickRecord(field, name) {
    return [
        { trigger: `.o_field_widget[name=${field}] input`, run: `edit ${name}` },
        {
            // the record, not the "Create ..." option offered before the search answers
            trigger:
                `.o_field_widget[name=${field}] .o-autocomplete--dropdown-item` +
                `:not(.o_m2o_dropdown_option):contains(${name})`,
            run: "click",
        },
    ];
}

// the exact name: :contains(Site) would also match an inbox such as "Site 2"
const SITE_ROW = ".o_field_widget[name=inbox_ids] .o_data_row:has(td[name=name]:text(Site))";

// An admin connects the tenant's Chatwoot account: the inboxes are listed, the "Site" inbox is
// given a crew, and handed-off conversations get a high priority.
registry.category("web_tour.tours").add("chatwoot_bridge_connect_tour", {
    steps: () => [
        ...stepUtils.goToAppSteps("mcp_integrator.menu_mcp_root", "Open AI Integration"),
        {
            trigger: ".o_main_navbar [data-menu-xmlid='chatwoot_bridge.menu_chatwoot_root']",
            run: "click",
        },
        {
            trigger: ".dropdown-item[data-menu-xmlid='chatwoot_bridge.menu_chatwoot_account']",
            run: "click",
        },
        { trigger: ".o_list_button_add", run: "click" },
        { trigger: ".o_field_widget[name=name] input", run: "edit Chatwoot Loja Tour" },
        ...pickRecord("tenant_id", TENANT),
        { trigger: ".o_field_widget[name=base_url] input", run: `edit ${CHATWOOT_URL}` },
        ...pickRecord("bot_credential_id", "Bot Loja Tour"),
        ...pickRecord("user_credential_id", "Usuário Loja Tour"),
        ...pickRecord("signing_credential_ids", "Assinatura Loja Tour"),
        {
            trigger:
                ".o_field_widget[name=signing_credential_ids] " +
                ".o_tag:contains(Assinatura Loja Tour)",
        },
        ...stepUtils.saveForm(),
        { trigger: ".o_form_saved button[name=action_connect]", run: "click" },
        {
            trigger:
                ".o_notification:has(.o_notification_bar.bg-success)" +
                ":contains(Connected to Chatwoot):contains(2 inboxes found)",
        },
        { trigger: ".o_field_widget[name=webhook_url]:contains(/chatwoot/webhook/)" },
        {
            trigger:
                ".o_field_widget[name=inbox_ids] .o_data_row td[name=name]:contains(Mercado Livre)",
        },
        { trigger: `${SITE_ROW} td[name=crew_id]`, run: "click" },
        {
            trigger: ".o_field_widget[name=inbox_ids] .o_selected_row [name=crew_id] input",
            run: "edit Vendas",
        },
        {
            trigger:
                ".o_field_widget[name=inbox_ids] .o_selected_row [name=crew_id] " +
                ".o-autocomplete--dropdown-item:not(.o_m2o_dropdown_option):contains(Vendas)",
            run: "click",
        },
        ...stepUtils.saveForm(),
        { trigger: `.o_form_saved ${SITE_ROW} td[name=crew_id]:contains(Vendas)` },
        { trigger: ".o_notebook .nav-link[name=handoff]", run: "click" },
        { trigger: ".o_field_widget[name=handoff_priority] .o_select_menu_toggler", run: "click" },
        { trigger: ".o_select_menu_item:contains(High)", run: "click" },
        ...stepUtils.saveForm(),
        { trigger: ".o_form_saved .o_field_widget[name=handoff_priority] input:value(High)" },
    ],
});
