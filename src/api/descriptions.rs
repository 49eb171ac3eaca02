//! Field descriptions as `kubectl explain` shows them. schemars copies a doc comment into the
//! schema line for line, and `kubectl explain` wraps descriptions itself, so a comment wrapped at
//! 100 columns would print its own line breaks in the middle of sentences. [`join_crd`] joins
//! the lines of each paragraph in every description of a CRD, once, where [`super::crds`]
//! generates them; the source comments stay wrapped for people reading the code.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    JSONSchemaPropsOrStringArray,
};

/// `text` with the lines of each paragraph joined by a space. Kept: blank lines (paragraph
/// breaks), the break before a list item (`- `, `* `, `+ `, `1. `, `1) `), and fenced code
/// blocks verbatim. A list item's continuation lines join the item.
pub fn join_paragraphs(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    // Whether the previous line is text the next line may continue.
    let mut joinable = false;
    let mut in_fence = false;
    for raw in text.split('\n') {
        let line = raw.trim_end();
        let content = line.trim_start();
        let fence = content.starts_with("```");
        if in_fence || fence {
            lines.push(line.to_owned());
            in_fence ^= fence;
            joinable = false;
            continue;
        }
        match lines.last_mut() {
            Some(last) if joinable && !content.is_empty() && !starts_list_item(content) => {
                last.push(' ');
                last.push_str(content);
            }
            _ => lines.push(line.to_owned()),
        }
        joinable = !content.is_empty();
    }
    lines.join("\n")
}

/// Whether `line` (without its indentation) opens a Markdown list item.
pub fn starts_list_item(line: &str) -> bool {
    if ["- ", "* ", "+ "]
        .iter()
        .any(|marker| line.starts_with(marker))
    {
        return true;
    }
    let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    digits > 0 && (line[digits..].starts_with(". ") || line[digits..].starts_with(") "))
}

/// Every description of `crd` (schemas of every version, printer columns) with its paragraphs
/// joined ([`join_paragraphs`]).
pub fn join_crd(crd: &mut CustomResourceDefinition) {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            join_schema(schema);
        }
        for column in version.additional_printer_columns.iter_mut().flatten() {
            join_description(&mut column.description);
        }
    }
}

fn join_description(description: &mut Option<String>) {
    if let Some(text) = description.as_mut() {
        *text = join_paragraphs(text);
    }
}

/// `schema` and every schema nested in it.
fn join_schema(schema: &mut JSONSchemaProps) {
    join_description(&mut schema.description);
    let maps = [
        schema.properties.as_mut(),
        schema.pattern_properties.as_mut(),
        schema.definitions.as_mut(),
    ];
    for nested in maps.into_iter().flatten().flat_map(|map| map.values_mut()) {
        join_schema(nested);
    }
    let lists = [
        schema.all_of.as_mut(),
        schema.any_of.as_mut(),
        schema.one_of.as_mut(),
    ];
    for nested in lists.into_iter().flatten().flatten() {
        join_schema(nested);
    }
    if let Some(not) = schema.not.as_mut() {
        join_schema(not);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(item)) => join_schema(item),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => items.iter_mut().for_each(join_schema),
        None => {}
    }
    for nested in [
        schema.additional_properties.as_mut(),
        schema.additional_items.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        if let JSONSchemaPropsOrBool::Schema(nested) = nested {
            join_schema(nested);
        }
    }
    for dependency in schema.dependencies.iter_mut().flat_map(|d| d.values_mut()) {
        if let JSONSchemaPropsOrStringArray::Schema(nested) = dependency {
            join_schema(nested);
        }
    }
}
