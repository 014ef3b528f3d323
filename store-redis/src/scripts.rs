//! The Lua scripts (`lua/*.lua`), compiled in. Pipeline scripts get the shared prelude
//! `lua/pipeline.lua` prepended; [`redis::Script`] runs them with `EVALSHA` and loads them again
//! by itself when Redis answers `NOSCRIPT` (after a restart).

use std::sync::LazyLock;

use redis::Script;

macro_rules! pipeline_script {
    ($name:ident, $file:literal) => {
        pub(crate) static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::new(concat!(
                include_str!("../lua/pipeline.lua"),
                include_str!(concat!("../lua/", $file))
            ))
        });
    };
}

macro_rules! catalog_script {
    ($name:ident, $file:literal) => {
        pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!(concat!("../lua/", $file))));
    };
}

pipeline_script!(ENQUEUE, "enqueue.lua");
pipeline_script!(CLAIM, "claim.lua");
pipeline_script!(NEXT_DUE, "next_due.lua");
pipeline_script!(SETTLE, "settle.lua");
pipeline_script!(DEFER, "defer.lua");
pipeline_script!(PURGE, "purge.lua");
pipeline_script!(RETRY, "retry.lua");
pipeline_script!(RECOVER, "recover.lua");
pipeline_script!(ENDPOINT_PUT, "endpoint_put.lua");
pipeline_script!(ENDPOINT_REMOVE, "endpoint_remove.lua");
pipeline_script!(ENDPOINT_FAILING, "endpoint_failing.lua");
pipeline_script!(ENDPOINT_DISABLE, "endpoint_disable.lua");
pipeline_script!(HOLD, "hold.lua");
pipeline_script!(ACCOUNT_PURGE, "account_purge.lua");

catalog_script!(DOC_PUT, "doc_put.lua");
catalog_script!(DOC_DELETE, "doc_delete.lua");
catalog_script!(API_KEY_PUT, "api_key_put.lua");
catalog_script!(API_KEY_DELETE, "api_key_delete.lua");
catalog_script!(API_KEY_TOUCH, "api_key_touch.lua");
catalog_script!(ACCOUNT_DELETE, "account_delete.lua");
catalog_script!(SITE_PURGE, "site_purge.lua");
catalog_script!(EVENT_DATA, "event_data.lua");
