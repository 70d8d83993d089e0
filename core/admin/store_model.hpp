// The admin endpoint's file store routes, served from the node's store::FileStore: store errors
// become the endpoint's answers (404 no such file, 400 bad key, 500 corrupt, 503 unreachable, 507
// full, 409 fenced), and writes go out under the active node's epoch. A library of its own
// (emsnode_admin_store), so that the endpoint itself depends on no store or database code.
//
//   model.store = admin::store_model(*file_store, active_writer, open_backend);
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "admin/model.hpp"
#include "store/file_store.hpp"

namespace emsnode::admin {

// Who writes: this node and its epoch while it is active. Throws OperationError (409, naming the
// active node) while it is not, so that a refused upload is answered before its body is read.
using WriterFn = std::function<store::Writer()>;
// Opens a store of `backend` ("share" or "blob") on the cluster's database: a migration's target.
using OpenStoreFn = std::function<std::unique_ptr<store::FileStore>(const std::string& backend)>;

// `store` must outlive the model.
StoreModel store_model(store::FileStore& store, WriterFn writer, OpenStoreFn open);

}  // namespace emsnode::admin
