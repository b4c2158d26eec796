//! The one macro behind every FHIR struct: typed elements we use, plus a flattened map that
//! keeps every element we do not model, so nothing a sender gave us is dropped.

/// Declares a FHIR element (datatype or backbone element).
///
/// Every listed field is optional on the wire and omitted when empty; unknown elements
/// (extensions, primitive `_x` siblings, anything newer) land in `extra` and are written back.
macro_rules! fhir_element {
    (
        $(#[$doc:meta])*
        $name:ident {
            $( $(#[$fattr:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $(
                $(#[$fattr])*
                #[serde(default, skip_serializing_if = "crate::omit")]
                pub $field: $ty,
            )*
            /// Elements Kinfold does not model, kept as they came.
            #[serde(flatten)]
            pub extra: serde_json::Map<String, serde_json::Value>,
        }
    };
}

/// Declares a FHIR resource: `id` and `meta` first, then the listed elements, then `extra`.
macro_rules! fhir_resource {
    (
        $(#[$doc:meta])*
        $name:ident {
            $( $(#[$fattr:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        fhir_element! {
            $(#[$doc])*
            $name {
                /// Logical id, assigned by the server that stores the resource.
                id: Option<String>,
                /// Version, last update and source of this copy.
                meta: Option<crate::Meta>,
                $( $(#[$fattr])* $field : $ty, )*
            }
        }
    };
}
