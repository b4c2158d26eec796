//! The frame every page shares: the header saying who is signed in, the navigation, the
//! main region, and the style sheet (inline: no request leaves for anything, no script).

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::session::Session;

const STYLE: &str = r#"
*, *::before, *::after { box-sizing: border-box; }
body { font-family: Arial, Helvetica, sans-serif; font-size: 16px; line-height: 1.4; color: #0b0c0c; background: #f0f4f5; margin: 0; }
a { color: #004b93; }
a:focus, button:focus, input:focus, select:focus, textarea:focus, summary:focus { outline: 3px solid #ffb81c; outline-offset: 1px; }
.skip { position: absolute; left: -9999px; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.grid > div { min-width: 0; }
td { overflow-wrap: break-word; }
td.when { white-space: nowrap; }
table.compact td { overflow-wrap: anywhere; }
.skip:focus { left: 0.5rem; top: 0.5rem; background: #fff; padding: 0.3rem; z-index: 2; }
header.site { background: #005eb8; color: #fff; padding: 0.5rem 1rem; display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; justify-content: space-between; }
header.site a { color: #fff; }
header.site .brand { font-weight: bold; font-size: 1.25rem; text-decoration: none; }
header.site nav ul { list-style: none; display: flex; gap: 1rem; margin: 0; padding: 0; align-items: center; }
header.site form { display: inline; }
header.site button { background: #fff; color: #005eb8; border: 0; padding: 0.25rem 0.6rem; font-size: 1rem; cursor: pointer; }
.who { font-size: 0.95rem; }
main { max-width: 1320px; margin: 0 auto; padding: 0.75rem 1rem 2rem; }
h1 { font-size: 1.6rem; margin: 0.4rem 0 0.6rem; }
h2 { font-size: 1.25rem; margin: 1.2rem 0 0.4rem; }
h3 { font-size: 1.05rem; margin: 0.8rem 0 0.3rem; }
.panel { background: #fff; border: 1px solid #aeb7bd; padding: 0.6rem 0.9rem; margin-bottom: 0.9rem; }
.grid { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 0.9rem; }
@media (max-width: 1000px) { .grid { grid-template-columns: 1fr; } }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { border: 1px solid #aeb7bd; padding: 0.3rem 0.45rem; text-align: left; vertical-align: top; }
th { background: #e8edee; }
.urgent { font-weight: bold; color: #a0170c; }
tr.overdue td { background: #fde8e8; }
tr.overdue td:first-child { border-left: 6px solid #a0170c; }
.tag { display: inline-block; padding: 0 0.35rem; border: 1px solid #425563; font-size: 0.9rem; white-space: nowrap; }
.tag.alert { border-color: #a0170c; color: #a0170c; font-weight: bold; }
.banner { border-left: 8px solid #005eb8; background: #fff; padding: 0.5rem 0.8rem; margin-bottom: 0.9rem; }
.banner.warn { border-color: #a0170c; }
.banner.done { border-color: #007f3b; }
.identity dl { display: grid; grid-template-columns: max-content 1fr max-content 1fr max-content 1fr; gap: 0.2rem 0.8rem; margin: 0; }
.identity dt { font-weight: bold; }
.identity dd { margin: 0; }
.interpreter { font-weight: bold; color: #0b0c0c; background: #ffeb3b; padding: 0 0.3rem; }
form.inline { display: flex; flex-wrap: wrap; gap: 0.4rem; align-items: flex-end; margin: 0.2rem 0; }
label { font-weight: bold; display: block; font-size: 0.95rem; }
input[type=text], input[type=search], input[type=date], select, textarea { font-size: 1rem; padding: 0.25rem; border: 2px solid #0b0c0c; }
textarea { width: 100%; }
button.primary, button.secondary { font-size: 1rem; padding: 0.3rem 0.7rem; border: 0; cursor: pointer; }
button.primary { background: #007f3b; color: #fff; }
button.secondary { background: #425563; color: #fff; }
button.warn { background: #a0170c; color: #fff; font-size: 1rem; padding: 0.3rem 0.7rem; border: 0; cursor: pointer; }
.muted { color: #4c6272; }
.chart img { max-width: 100%; height: auto; }
.users { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 0.8rem; list-style: none; padding: 0; }
.users button { width: 100%; text-align: left; background: #fff; border: 2px solid #005eb8; padding: 0.6rem; font-size: 1rem; cursor: pointer; color: #0b0c0c; }
.users button strong { display: block; font-size: 1.1rem; color: #004b93; }
"#;

/// A whole page: `title` is the page's `<title>` and `<h1>`.
pub(crate) fn page(title: &str, session: Option<&Session>, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – Kinfold" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                a class="skip" href="#main" { "Skip to main content" }
                header class="site" {
                    a class="brand" href="/app/" { "Kinfold" }
                    @if let Some(session) = session {
                        nav aria-label="Main" {
                            ul {
                                li { a href="/app/worklist" { "Worklist" } }
                                li { a href="/app/search" { "Find a child" } }
                                li {
                                    form method="post" action="/app/sign-out" {
                                        input type="hidden" name="csrf" value=(session.csrf);
                                        button type="submit" { "Sign out" }
                                    }
                                }
                            }
                        }
                        p class="who" {
                            "Signed in as " strong { (session.user.name) } ", "
                            (role_words(&session.user.role)) ", " (session.user.organisation)
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
    .into_string()
}

/// A role in words.
pub(crate) fn role_words(role: &str) -> &str {
    match role {
        "paediatric-liaison-nurse" => "paediatric liaison nurse",
        "health-visitor" => "health visitor",
        "school-nurse" => "school nurse",
        "gp" => "GP",
        "safeguarding-professional" => "safeguarding lead",
        "privacy-officer" => "privacy officer",
        "midwife" => "midwife",
        "social-worker" => "social worker",
        "emergency-department-clinician" => "emergency department clinician",
        "identity-steward" => "identity steward",
        other => other,
    }
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A labelled choice of one: `options` as (value, words), the one whose value is `chosen`
/// selected.
pub(crate) fn choice<'a>(
    id: &str,
    name: &str,
    label: &str,
    chosen: &str,
    options: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Markup {
    html! {
        div {
            label for=(id) { (label) }
            select id=(id) name=(name) {
                @for (value, words) in options {
                    option value=(value) selected[chosen == value] { (words) }
                }
            }
        }
    }
}

/// The purpose chooser a form carries.
pub(crate) fn purpose_field(id: &str, chosen: &str) -> Markup {
    let chosen = if chosen == "safeguarding" {
        "safeguarding"
    } else {
        "direct-care"
    };
    choice(
        id,
        "purpose",
        "Purpose",
        chosen,
        [
            ("direct-care", "Direct care"),
            ("safeguarding", "Safeguarding"),
        ],
    )
}
