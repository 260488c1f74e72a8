use super::*;

#[test]
fn selector_matchers_are_merged_into_every_selector() {
    let extra = selector_matchers(Some(" {cluster=\"a\", node=~\"gpu-.*\",} ")).unwrap();
    assert_eq!(extra.as_deref(), Some("cluster=\"a\", node=~\"gpu-.*\""));
    assert_eq!(
        with_matchers("up", &[], extra.as_deref()),
        "up{cluster=\"a\", node=~\"gpu-.*\"}"
    );
    assert_eq!(
        with_matchers("", &["__name__=~\"a|b\""], extra.as_deref()),
        "{__name__=~\"a|b\",cluster=\"a\", node=~\"gpu-.*\"}"
    );
    assert_eq!(with_matchers("up", &[], None), "up{}");
    assert_eq!(
        selector_matchers(Some("cluster=\"a\"")).unwrap().as_deref(),
        Some("cluster=\"a\"")
    );
    assert_eq!(selector_matchers(Some("{}")).unwrap(), None);
    for bad in ["up{cluster=\"a\"}", "{cluster=\"a\"", "cluster=\"a\"}"] {
        let err = selector_matchers(Some(bad)).unwrap_err().to_string();
        assert!(err.contains("label matchers only"), "{bad}: {err}");
    }
}
