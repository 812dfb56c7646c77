//! Where a GitHub target's other endpoints live, derived from its REST API URL:
//! `https://api.github.com` (public GitHub) or `https://HOST/api/v3` (Enterprise).

/// `owner/name` of a GitHub target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    pub owner: String,
    pub name: String,
}

impl RepoRef {
    /// Splits `owner/name`; `None` for anything else.
    pub fn parse(repository: &str) -> Option<RepoRef> {
        let (owner, name) = repository.split_once('/')?;
        let ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        (ok(owner) && ok(name) && name != "." && name != "..").then(|| RepoRef {
            owner: owner.into(),
            name: name.into(),
        })
    }

    /// The REST path of the repository, `/repos/owner/name`.
    pub fn path(&self) -> String {
        format!("/repos/{}/{}", self.owner, self.name)
    }
}

fn split_origin(api_url: &str) -> (&str, &str) {
    let after_scheme = api_url.find("://").map_or(0, |i| i + 3);
    match api_url[after_scheme..].find('/') {
        Some(i) => api_url.split_at(after_scheme + i),
        None => (api_url, ""),
    }
}

/// The HTTPS clone URL: `https://github.com/owner/name.git` for the public API,
/// `https://HOST/owner/name.git` for `https://HOST/api/v3`.
pub fn clone_url(api_url: &str, repo: &RepoRef) -> String {
    let api_url = api_url.trim_end_matches('/');
    let (origin, path) = split_origin(api_url);
    let origin = origin.replacen("://api.github.com", "://github.com", 1);
    let prefix = path.strip_suffix("/api/v3").unwrap_or("");
    format!("{origin}{prefix}/{}/{}.git", repo.owner, repo.name)
}

/// The base the GraphQL endpoint (`/graphql`) hangs off: the API URL itself for
/// public GitHub, `https://HOST/api` for Enterprise's `https://HOST/api/v3`.
pub fn graphql_base(api_url: &str) -> String {
    let api_url = api_url.trim_end_matches('/');
    api_url
        .strip_suffix("/v3")
        .filter(|rest| rest.ends_with("/api"))
        .unwrap_or(api_url)
        .to_string()
}

/// The path of a pagination link relative to `api_url`, so it goes through the same
/// authenticated client; `None` for a link to anywhere else (never followed).
pub fn relative_link<'a>(api_url: &str, link: &'a str) -> Option<&'a str> {
    let rest = link.strip_prefix(api_url.trim_end_matches('/'))?;
    rest.starts_with('/').then_some(rest)
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(header: &str) -> Option<&str> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| url.trim().trim_start_matches('<').trim_end_matches('>'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_owner_slash_name() {
        let r = RepoRef::parse("acme/widgets.rs").expect("valid");
        assert_eq!(r.path(), "/repos/acme/widgets.rs");
        for bad in ["acme", "acme/", "/x", "a/b/c", "a/..", "a b/c"] {
            assert_eq!(RepoRef::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn endpoints_follow_the_api_url() {
        let r = RepoRef::parse("acme/widgets").expect("valid");
        assert_eq!(
            clone_url("https://api.github.com", &r),
            "https://github.com/acme/widgets.git"
        );
        assert_eq!(
            clone_url("https://ghe.example/api/v3/", &r),
            "https://ghe.example/acme/widgets.git"
        );
        assert_eq!(
            clone_url("http://127.0.0.1:9000/api/v3", &r),
            "http://127.0.0.1:9000/acme/widgets.git"
        );
        assert_eq!(
            graphql_base("https://api.github.com"),
            "https://api.github.com"
        );
        assert_eq!(
            graphql_base("https://ghe.example/api/v3"),
            "https://ghe.example/api"
        );
    }

    #[test]
    fn pagination_links_stay_on_the_api() {
        let h = "<http://h/api/v3/repos/a/b/pulls?page=2>; rel=\"next\", <http://h/api/v3/repos/a/b/pulls?page=5>; rel=\"last\"";
        let next = next_link(h).expect("next");
        assert_eq!(
            relative_link("http://h/api/v3", next),
            Some("/repos/a/b/pulls?page=2")
        );
        assert_eq!(relative_link("http://h/api/v3", "http://evil/x"), None);
        assert_eq!(next_link("<http://h/x>; rel=\"last\""), None);
    }
}
