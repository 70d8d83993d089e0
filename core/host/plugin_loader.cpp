#include "host/plugin_loader.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#include "config/trusted_file.hpp"
#include "host/host_error.hpp"

namespace emsnode::host {
namespace {

namespace fs = std::filesystem;

// The smallest table any ABI 1.x plugin can hand us: everything up to and including destroy.
constexpr std::size_t kMinPluginTableSize =
    offsetof(emsnode_plugin_api, destroy) + sizeof(emsnode_plugin_api::destroy);
// Enough to read struct_size, abi_major and abi_minor, which every major keeps in place.
constexpr std::size_t kVersionPrefixSize =
    offsetof(emsnode_plugin_api, abi_minor) + sizeof(emsnode_plugin_api::abi_minor);

std::string abi_text(unsigned major, unsigned minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

const std::string kHostAbi = abi_text(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR);

void check_abi(const fs::path& file, unsigned major, unsigned minor) {
  if (major != EMSNODE_ABI_MAJOR) {
    throw HostError(file.string() + ": built for ABI " + abi_text(major, minor) +
                    ", this host speaks ABI " + kHostAbi +
                    ": a different major cannot work (rebuild the plugin with this host's SDK)");
  }
  if (minor > EMSNODE_ABI_MINOR) {
    throw HostError(file.string() + ": built for ABI " + abi_text(major, minor) +
                    ", newer than this host's ABI " + kHostAbi +
                    " (upgrade emsnode, or rebuild the plugin with this host's SDK)");
  }
}

std::string_view view(emsnode_str text) {
  return text.len == 0 ? std::string_view() : std::string_view(text.ptr, text.len);
}

// dlerror() text usually starts with the path we already name; drop the repeat.
std::string load_error(const fs::path& file) {
  const char* raw = ::dlerror();
  std::string text = raw != nullptr ? raw : "unknown error";
  const std::string prefix = file.string() + ": ";
  if (text.compare(0, prefix.size(), prefix) == 0) text.erase(0, prefix.size());
  return text;
}

// A plugin library opened for loading, not through a symbolic link. Once loaded, its descriptor
// stays open for the life of the process: the loader knows the library by the name
// /proc/self/fd/N, and that number, reused for another library, would be taken for this one.
class OpenLibrary {
 public:
  explicit OpenLibrary(const fs::path& file)
      : fd_(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) {
    if (fd_ < 0) {
      const int error = errno;
      throw HostError(file.string() + ": cannot open: " +
                      (error == ELOOP ? std::string("it is a symbolic link (install the library "
                                                    "itself in the plugin's folder)")
                                      : std::string(std::strerror(error))));
    }
  }
  ~OpenLibrary() {
    if (!loaded_) ::close(fd_);
  }
  OpenLibrary(const OpenLibrary&) = delete;
  OpenLibrary& operator=(const OpenLibrary&) = delete;

  int fd() const { return fd_; }
  // The path through which the loader opens this very descriptor's file.
  std::string proc_path() const { return "/proc/self/fd/" + std::to_string(fd_); }
  void keep_open() { loaded_ = true; }

 private:
  int fd_;
  bool loaded_ = false;
};

void check_against_manifest(const Manifest& manifest, const emsnode_plugin_api& api) {
  const std::string lib = manifest.library.string();
  const std::string toml = manifest.file.string();
  const std::string lib_abi = abi_text(api.abi_major, api.abi_minor);
  const std::string toml_abi = abi_text(manifest.abi_major, manifest.abi_minor);
  if (lib_abi != toml_abi) {
    throw HostError(lib + ": abi " + lib_abi + " compiled into the library differs from abi \"" +
                    toml_abi + "\" in " + toml + " (install the plugin.toml built with it)");
  }
  if (view(api.id) != manifest.id) {
    throw HostError(lib + ": id \"" + std::string(view(api.id)) +
                    "\" compiled into the library differs from id \"" + manifest.id + "\" in " +
                    toml + " (install the plugin.toml built with it)");
  }
  if (view(api.version) != manifest.version) {
    throw HostError(lib + ": version \"" + std::string(view(api.version)) +
                    "\" compiled into the library differs from version \"" + manifest.version +
                    "\" in " + toml + " (install the plugin.toml built with it)");
  }
}

void check_entry_points(const fs::path& file, const emsnode_plugin_api& api) {
  const char* missing = api.create == nullptr    ? "create"
                        : api.start == nullptr   ? "start"
                        : api.stop == nullptr    ? "stop"
                        : api.destroy == nullptr ? "destroy"
                                                 : nullptr;
  if (missing != nullptr) {
    throw HostError(file.string() + ": the plugin table has no " + missing + " function");
  }
}

}  // namespace

void check_file_trust(const fs::path& file) {
  if (const std::string reason = config::untrusted_reason(file); !reason.empty()) {
    throw HostError(reason);
  }
}

void check_manifest_abi(const Manifest& manifest) {
  check_abi(manifest.file, manifest.abi_major, manifest.abi_minor);
}

LoadedLibrary load_library(const Manifest& manifest) {
  check_manifest_abi(manifest);
  check_file_trust(manifest.file);

  // The library is opened once, without following a link, judged through that descriptor and
  // loaded from that same descriptor: nobody can swap the file between the check and the load.
  const fs::path& file = manifest.library;
  OpenLibrary opened(file);
  if (const std::string reason = config::untrusted_reason(opened.fd(), file); !reason.empty()) {
    throw HostError(reason);
  }
  auto library = std::make_shared<boost::dll::shared_library>();
  boost::dll::fs::error_code ec;
  // rtld_now: an unresolved symbol is refused here, with its name, instead of crashing later.
  library->load(opened.proc_path(),
                boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
  if (ec) {
    throw HostError(file.string() + ": cannot load library: " + load_error(opened.proc_path()));
  }
  opened.keep_open();
  if (!library->has(EMSNODE_PLUGIN_ENTRY_SYMBOL)) {
    throw HostError(file.string() + ": no entry point " EMSNODE_PLUGIN_ENTRY_SYMBOL
                                    " (not an emsnode plugin, or the symbol is not exported: "
                                    "declare it with EMSNODE_PLUGIN_EXPORT)");
  }
  const auto entry = library->get<const emsnode_plugin_api*(std::uint16_t, std::uint16_t)>(
      EMSNODE_PLUGIN_ENTRY_SYMBOL);

  const emsnode_plugin_api* api = nullptr;
  try {
    api = entry(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR);
  } catch (const std::exception& e) {
    throw HostError(file.string() + ": " EMSNODE_PLUGIN_ENTRY_SYMBOL " threw: " + e.what());
  }
  if (api == nullptr) {
    throw HostError(file.string() +
                    ": " EMSNODE_PLUGIN_ENTRY_SYMBOL
                    " returned NULL: the plugin declined to run on host ABI " +
                    kHostAbi);
  }
  if (api->struct_size < kVersionPrefixSize) {
    throw HostError(file.string() + ": the plugin table is " + std::to_string(api->struct_size) +
                    " bytes, too small to hold an ABI version");
  }
  check_abi(file, api->abi_major, api->abi_minor);
  if (api->struct_size < kMinPluginTableSize) {
    throw HostError(file.string() + ": the plugin table is " + std::to_string(api->struct_size) +
                    " bytes; ABI " + kHostAbi + " needs at least " +
                    std::to_string(kMinPluginTableSize));
  }
  check_entry_points(file, *api);
  check_against_manifest(manifest, *api);
  return LoadedLibrary{manifest, std::move(library), api, opened.proc_path()};
}

bool pin_library(const LoadedLibrary& loaded) {
  // RTLD_NOLOAD finds the object we already loaded; RTLD_NODELETE then marks it never to be
  // unmapped, even when every handle is closed.
  void* handle = ::dlopen(loaded.loaded_as.c_str(), RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  if (handle == nullptr) return false;
  ::dlclose(handle);
  return true;
}

}  // namespace emsnode::host
