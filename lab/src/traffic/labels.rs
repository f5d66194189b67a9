//! The 1000 ImageNet-1k class labels in the index order of Keras' ResNet models, and top-k selection.
//!
//! `assets/imagenet_classes.tsv` (`index`, `wordnet_id`, `label`, with a header line) is embedded in the binary.

use std::sync::OnceLock;

use serde::Serialize;

/// The class list as shipped.
const CLASSES_TSV: &str = include_str!("../../../assets/imagenet_classes.tsv");

/// One ImageNet class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagenetClass {
    /// The WordNet synset id, e.g. `n03787032`.
    pub wordnet_id: String,
    /// The label, e.g. `mortarboard`.
    pub label: String,
}

/// A class with the score the model gave it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScore {
    /// The class index (0–999).
    pub index: usize,
    /// The WordNet synset id (empty for an index outside the list).
    pub wordnet_id: String,
    /// The label (`class <index>` for an index outside the list).
    pub label: String,
    /// The model's score (a probability for the lab's softmax models).
    pub score: f32,
}

/// The 1000 classes, parsed once.
pub fn imagenet_classes() -> &'static [ImagenetClass] {
    static CLASSES: OnceLock<Vec<ImagenetClass>> = OnceLock::new();
    CLASSES.get_or_init(|| {
        CLASSES_TSV
            .lines()
            .skip(1)
            .filter(|line| !line.trim().is_empty())
            .enumerate()
            .map(|(position, line)| {
                let mut fields = line.splitn(3, '\t');
                let index: usize = fields.next().and_then(|index| index.parse().ok()).unwrap_or(usize::MAX);
                assert_eq!(
                    index,
                    position,
                    "assets/imagenet_classes.tsv is out of order at line {}",
                    position + 2
                );
                ImagenetClass {
                    wordnet_id: fields.next().unwrap_or_default().to_string(),
                    label: fields.next().unwrap_or_default().trim_end().to_string(),
                }
            })
            .collect()
    })
}

/// The `k` highest scores with their labels, highest first (ties: lower index first).
pub fn top_k(scores: &[f32], k: usize) -> Vec<ClassScore> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&left, &right| scores[right].total_cmp(&scores[left]).then(left.cmp(&right)));
    let classes = imagenet_classes();
    order
        .into_iter()
        .take(k)
        .map(|index| match classes.get(index) {
            Some(class) => ClassScore {
                index,
                wordnet_id: class.wordnet_id.clone(),
                label: class.label.clone(),
                score: scores[index],
            },
            None => ClassScore {
                index,
                wordnet_id: String::new(),
                label: format!("class {index}"),
                score: scores[index],
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_has_the_keras_order() {
        let classes = imagenet_classes();
        assert_eq!(classes.len(), 1000);
        assert_eq!(classes[0].label, "tench, Tinca tinca");
        assert_eq!(classes[667].label, "mortarboard");
        assert_eq!(classes[457].label, "bow tie, bow-tie, bowtie");
        assert_eq!(classes[281].label, "tabby, tabby cat");
    }

    #[test]
    fn top_k_orders_by_score_and_labels() {
        let mut scores = vec![0.0f32; 1000];
        scores[667] = 0.6;
        scores[457] = 0.3;
        scores[906] = 0.3;
        let top = top_k(&scores, 3);
        let indices: Vec<usize> = top.iter().map(|class| class.index).collect();
        assert_eq!(indices, vec![667, 457, 906]);
        assert_eq!(top[0].label, "mortarboard");
        assert_eq!(top[0].wordnet_id, "n03787032");
    }

    #[test]
    fn indices_past_the_list_get_a_placeholder_label() {
        let scores: Vec<f32> = (0..1001).map(|index| index as f32).collect();
        let top = top_k(&scores, 1);
        assert_eq!(top[0].label, "class 1000");
    }
}
