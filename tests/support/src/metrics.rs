//! Reading the Prometheus text an operator serves on its probe port.

/// The sum of every series of the metric `name` whose labels contain `labels` (such as
/// `operation="create"`; empty for all).
pub fn sum(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (series_labels, value) = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            series_labels.contains(labels).then_some(value)
        })
        .filter_map(|value| value.trim().parse::<f64>().ok())
        // Not `sum()`: an empty sum of floats is -0.
        .fold(0.0, |total, value| total + value)
}
