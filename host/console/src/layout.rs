//! The page frame every console view shares (head, navigation, the live-update
//! banner and region), and the small pieces views are built from: status badges,
//! times, links. maud escapes every value; nothing here opts out.

use super::session::Session;
use leviathan_domain::tokens::Role;
use maud::{DOCTYPE, Markup, html};

/// How the script keeps a view current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// Re-render the main region shortly after any event.
    Render,
    /// Count new events and offer to show them (rows never move under the pointer).
    Count,
    /// Leave the page alone (forms, confirmations).
    Off,
}

impl Live {
    fn as_str(self) -> &'static str {
        match self {
            Live::Render => "render",
            Live::Count => "count",
            Live::Off => "off",
        }
    }
}

/// The sections of the navigation.
pub const NAV: &[(&str, &str)] = &[
    ("/console", "Overview"),
    ("/console/prs", "Pull requests"),
    ("/console/events", "Events"),
    ("/console/plugins", "Plugins"),
];

/// A whole page: `title`, the caller (none on the login page), the live mode, the
/// event sequence the page reflects (the stream resumes after it), and the body.
pub fn page(
    title: &str,
    session: Option<&Session>,
    live: Live,
    last_seq: u64,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · Leviathan" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console" { "Leviathan" }
                    @if let Some(s) = session {
                        nav aria-label="Sections" {
                            ul {
                                @for (href, label) in NAV {
                                    li { a href=(href) { (label) } }
                                }
                            }
                        }
                        div.who {
                            span { (s.principal.name) " · " (s.principal.role.as_str()) }
                            form method="post" action="/console/logout" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                div #stream-banner .banner hidden role="status" {
                    "Live updates lost, retrying"
                    span #stream-age {}
                }
                div #live-summary .visually-hidden aria-live="polite" {}
                @if session.is_some() && live != Live::Off {
                    div #new-events hidden {
                        a #new-events-link href="" { span #new-events-count { "0" } " new events: show" }
                    }
                }
                main #main tabindex="-1"
                    data-live=(live.as_str())
                    data-stream=(format!("/console/stream?after={last_seq}")) {
                    (body)
                }
            }
        }
    }
}

/// The kinds of status a badge shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Warn,
    Bad,
    Neutral,
}

/// A status as icon, word and colour (never colour alone).
pub fn badge(tone: Tone, word: &str) -> Markup {
    let (class, icon) = match tone {
        Tone::Good => ("badge good", "✓"),
        Tone::Warn => ("badge warn", "!"),
        Tone::Bad => ("badge bad", "✕"),
        Tone::Neutral => ("badge neutral", "•"),
    };
    html! { span class=(class) { span aria-hidden="true" { (icon) } " " (word) } }
}

/// A moment as `<time>`: absolute UTC, with a relative label to `now_ms`.
pub fn time(ms: u64, now_ms: u64) -> Markup {
    let stamp = leviathan_domain::clock::rfc3339(ms);
    html! {
        time datetime=(stamp) title=(stamp) {
            (stamp.replace('T', " ").replace('Z', " UTC")) " (" (relative(ms, now_ms)) ")"
        }
    }
}

/// `3 min ago`, `in 20 s`.
pub fn relative(ms: u64, now_ms: u64) -> String {
    let (secs, future) = if ms > now_ms {
        ((ms - now_ms) / 1000, true)
    } else {
        ((now_ms - ms) / 1000, false)
    };
    let span = match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    };
    if future {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// A link to a URL from data, only when it is `http(s)`; otherwise its text.
pub fn external_link(url: &str, label: &str) -> Markup {
    let lower = url.trim_start().to_ascii_lowercase();
    let safe = (lower.starts_with("https://") || lower.starts_with("http://"))
        && !url.chars().any(|c| c.is_control() || c.is_whitespace());
    html! {
        @if safe {
            a href=(url) rel="noopener noreferrer" { (label) }
        } @else {
            span.muted { (label) }
        }
    }
}

/// A path segment (or query value) percent-encoded for a URL the host builds.
pub fn encode(value: &str) -> String {
    leviathan_domain::percent::encode(value, b"")
}

/// Whether `session` may act (operators only).
pub fn can_act(session: &Session) -> bool {
    session.principal.role >= Role::Operator
}

/// An action button for an operator: a GET to the confirm step (which asks for the
/// reason and posts); nothing for a viewer.
pub fn action_link(session: &Session, action: &str, query: &str, label: &str) -> Markup {
    html! {
        @if can_act(session) {
            a.button href=(format!("/console/actions/{action}?{query}")) { (label) }
        }
    }
}

/// An error or empty state in a view.
pub fn notice(text: &str) -> Markup {
    html! { p.notice { (text) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_links_are_links() {
        for bad in [
            "javascript:alert(1)",
            " JavaScript:alert(1)",
            "data:text/html,x",
            "http://a b",
        ] {
            let html = external_link(bad, "x").into_string();
            assert!(!html.contains("href"), "{bad}: {html}");
        }
        let html = external_link("https://example.com/pr/1?a=\"b\"", "PR").into_string();
        assert!(
            html.contains("href=\"https://example.com/pr/1?a=&quot;b&quot;\""),
            "{html}"
        );
    }

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative(0, 5_000), "5 s ago");
        assert_eq!(relative(0, 180_000), "3 min ago");
        assert_eq!(relative(20_000, 0), "in 20 s");
        assert_eq!(encode("a/b c<"), "a%2Fb%20c%3C");
    }
}
