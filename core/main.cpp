// emsnode: one node of an active/passive cluster. Everything is wired in cli/ and node/.
#include "cli/cli.hpp"

int main(int argc, char** argv) {
  return emsnode::cli::main(argc, argv);
}
