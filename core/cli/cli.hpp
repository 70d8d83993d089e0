// The emsnode command line: parses the verb and options and runs the verb.
#pragma once

namespace emsnode::cli {

// Exit statuses shared by every verb.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;  // a runtime failure after start
constexpr int kExitInvalid = 2;  // usage error, invalid config, or a refused plugin

int main(int argc, char** argv);

}  // namespace emsnode::cli
