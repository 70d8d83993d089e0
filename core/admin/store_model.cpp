#include "admin/store_model.hpp"

#include <optional>
#include <utility>
#include <vector>

#include "db/database.hpp"

namespace emsnode::admin {
namespace {

StoreFile view_of(const store::FileInfo& info) {
  return {info.key, info.size, info.sha256, info.modified_at_ms, info.writer_node, info.epoch};
}

// Runs a store operation, turning the store's errors into the endpoint's answers. Any other
// store failure passes through: a 500 the endpoint logs as such.
template <typename Operation>
auto answered(Operation&& operation) -> decltype(operation()) {
  try {
    return operation();
  } catch (const store::NotFound& e) {
    throw OperationError::not_found(e.what());
  } catch (const store::InvalidKey& e) {
    throw OperationError::bad_input(e.what());
  } catch (const store::Corrupt& e) {
    throw OperationError::failed(e.what());
  } catch (const store::Unavailable& e) {
    throw OperationError::unavailable(e.what());
  } catch (const store::NoSpace& e) {
    throw OperationError::no_space(e.what());
  } catch (const db::FencedError& e) {
    throw OperationError::conflict(e.what());
  } catch (const db::UnreachableError& e) {
    throw OperationError::unavailable(e.what());
  }
}

}  // namespace

StoreModel store_model(store::FileStore& store, WriterFn writer, OpenStoreFn open) {
  StoreModel model;
  model.put = [&store, writer](const std::string& key, std::istream& content) {
    return answered([&] {
      // Both refusals come before the first byte of content is read.
      store::check_key(key);
      const store::Writer who = writer();
      return view_of(store.put(key, content, who));
    });
  };
  model.get = [&store](const std::string& key, std::ostream& out) {
    return answered([&] { return view_of(store.get(key, out)); });
  };
  model.stat = [&store](const std::string& key) {
    return answered([&]() -> std::optional<StoreFile> {
      const std::optional<store::FileInfo> found = store.stat(key);
      if (!found) return std::nullopt;
      return view_of(*found);
    });
  };
  model.list = [&store](const std::string& prefix) {
    return answered([&] {
      std::vector<StoreFile> files;
      for (const store::FileInfo& info : store.list(prefix)) files.push_back(view_of(info));
      return files;
    });
  };
  model.remove = [&store, writer](const std::string& key) {
    answered([&] {
      store::check_key(key);
      store.remove(key, writer());
    });
  };
  model.migrate = [&store, writer, open = std::move(open)](const std::string& to) {
    const std::string from(store.backend());
    if (to == from) {
      throw OperationError::bad_input("the file store already uses the " + from +
                                      " backend: nothing to migrate");
    }
    const store::Writer who = writer();
    return answered([&] {
      const std::unique_ptr<store::FileStore> target = open(to);
      const store::MigrationReport report = store::migrate(store, *target, who);
      return StoreMigration{from, to, report.copied, report.skipped, report.bytes};
    });
  };
  return model;
}

}  // namespace emsnode::admin
