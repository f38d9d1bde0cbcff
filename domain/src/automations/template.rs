use ltf_schemas::Fields;
use serde_json::Value as Json;
use thiserror::Error;

/// The most bytes the templates of one action may render to (text, or a value's JSON),
/// so a run's data cannot blow up the events and requests made from it.
pub const MAX_RENDERED_BYTES: usize = 64 * 1024;

/// Why a template does not render.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    /// A `{{path}}` that names nothing in the run's data.
    #[error("template {template:?}: {{{{{path}}}}} is not in the run's data")]
    Missing {
        /// The template.
        template: String,
        /// The missing path.
        path: String,
    },
    /// The output is larger than [`MAX_RENDERED_BYTES`].
    #[error("template output is {bytes} bytes or more, more than the limit of {limit}")]
    TooLarge {
        /// The size reached when rendering stopped.
        bytes: usize,
        /// [`MAX_RENDERED_BYTES`].
        limit: usize,
    },
}

fn too_large(bytes: usize) -> TemplateError {
    TemplateError::TooLarge { bytes, limit: MAX_RENDERED_BYTES }
}

/// The JSON size of `value`, counted only up to the limit.
fn json_size(value: &Json) -> usize {
    match value {
        Json::String(s) => s.len() + 2,
        other => serde_json::to_vec(other).map_or(usize::MAX, |v| v.len()),
    }
}

fn lookup<'a>(data: &'a Json, path: &str) -> Option<&'a Json> {
    path.split('.').try_fold(data, |v, key| match v {
        Json::Object(m) => m.get(key),
        Json::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// Renders `{{path}}` placeholders of `template` from `data` (dotted paths into objects,
/// numeric segments into arrays). A template that is exactly one placeholder keeps the
/// value's JSON type (`"{{fields.count}}"` gives a number); otherwise values are written
/// into the string (strings as they are, everything else as JSON). Output larger than
/// [`MAX_RENDERED_BYTES`] is [`TemplateError::TooLarge`], found before it is built.
pub fn render(template: &str, data: &Json) -> Result<Json, TemplateError> {
    let missing = |path: &str| TemplateError::Missing { template: template.to_owned(), path: path.to_owned() };
    let trimmed = template.trim();
    if let Some(path) = trimmed.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
        if !path.contains("{{") && !path.contains("}}") {
            let path = path.trim();
            let value = lookup(data, path).ok_or_else(|| missing(path))?;
            let bytes = json_size(value);
            return if bytes > MAX_RENDERED_BYTES { Err(too_large(bytes)) } else { Ok(value.clone()) };
        }
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else { break };
        out.push_str(&rest[..start]);
        let path = rest[start + 2..start + 2 + len].trim();
        let value = lookup(data, path).ok_or_else(|| missing(path))?;
        if out.len() + json_size(value) > MAX_RENDERED_BYTES {
            return Err(too_large(out.len() + json_size(value)));
        }
        match value {
            Json::String(s) => out.push_str(s),
            Json::Null => {}
            other => out.push_str(&other.to_string()),
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    if out.len() > MAX_RENDERED_BYTES {
        return Err(too_large(out.len()));
    }
    Ok(Json::String(out))
}

/// Renders every string inside `value` (recursively); the whole output is bounded by
/// [`MAX_RENDERED_BYTES`].
pub fn render_json(value: &Json, data: &Json) -> Result<Json, TemplateError> {
    let rendered = render_tree(value, data)?;
    let bytes = json_size(&rendered);
    if bytes > MAX_RENDERED_BYTES {
        return Err(too_large(bytes));
    }
    Ok(rendered)
}

fn render_tree(value: &Json, data: &Json) -> Result<Json, TemplateError> {
    Ok(match value {
        Json::String(s) => render(s, data)?,
        Json::Array(a) => Json::Array(a.iter().map(|v| render_tree(v, data)).collect::<Result<_, _>>()?),
        Json::Object(m) => Json::Object(m.iter().map(|(k, v)| Ok((k.clone(), render_tree(v, data)?))).collect::<Result<_, _>>()?),
        other => other.clone(),
    })
}

/// Renders every value of `fields`; the whole output is bounded by [`MAX_RENDERED_BYTES`].
pub fn render_fields(fields: &Fields, data: &Json) -> Result<Fields, TemplateError> {
    let rendered: Fields = fields.iter().map(|(k, v)| Ok((k.clone(), render_tree(v, data)?))).collect::<Result<_, _>>()?;
    let bytes: usize = rendered.iter().map(|(k, v)| k.len() + json_size(v)).sum();
    if bytes > MAX_RENDERED_BYTES {
        return Err(too_large(bytes));
    }
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_template_rendering_more_than_the_limit_is_refused() {
        let data = json!({"big": "x".repeat(40 * 1024), "obj": {"k": "y".repeat(70 * 1024)}});
        assert!(render("{{big}}", &data).is_ok(), "40 KiB fits");
        assert!(render("{{big}}{{big}}", &data).is_err(), "80 KiB of text is refused");
        assert!(render("{{obj}}", &data).is_err(), "a 70 KiB value is refused");
        assert!(render_json(&json!({"a": "{{big}}", "b": "{{big}}"}), &data).is_err(), "80 KiB over one action is refused");
    }

    #[test]
    fn placeholders_are_filled_and_single_ones_keep_their_type() {
        let data = json!({"recordId": "r1", "fields": {"n": 3, "tags": ["a", "b"], "name": "Ada"}});
        assert_eq!(render("{{fields.n}}", &data).unwrap(), json!(3));
        assert_eq!(
            render("Hi {{ fields.name }} ({{recordId}}) #{{fields.n}} {{fields.tags.1}}", &data).unwrap(),
            json!("Hi Ada (r1) #3 b")
        );
        assert_eq!(render("no placeholders", &data).unwrap(), json!("no placeholders"));
        let err = render("{{fields.nope}}", &data).unwrap_err();
        assert!(matches!(err, TemplateError::Missing { ref path, .. } if path == "fields.nope"), "{err:?}");
        let mut f = Fields::new();
        f.insert("email".into(), json!("{{fields.name}}@example.com"));
        assert_eq!(render_fields(&f, &data).unwrap()["email"], json!("Ada@example.com"));
    }
}
