// Runs a fuzz target's LLVMFuzzerTestOneInput once on each file given, or on each file under
// each directory given, without libFuzzer: so the committed corpus and regressions are checked
// by make check with the normal compiler, sanitizers included. A broken property traps (the
// target prints which), so the first bad input ends the run with the signal, named here.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *replaying = "";

// Only async-signal-safe calls: name the input, then die of the same signal.
static void name_the_input(int sig) {
  const char *what = "fuzz replay: died on ";
  ssize_t ignored = write(2, what, std::strlen(what));
  ignored = write(2, replaying, std::strlen(replaying));
  ignored = write(2, "\n", 1);
  (void)ignored;
  signal(sig, SIG_DFL);
  raise(sig);
}

static void collect(const std::string &path, std::vector<std::string> &files) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    std::perror(path.c_str());
    std::exit(2);
  }
  if (!S_ISDIR(st.st_mode)) {
    files.push_back(path);
    return;
  }
  DIR *dir = opendir(path.c_str());
  if (!dir) {
    std::perror(path.c_str());
    std::exit(2);
  }
  std::vector<std::string> names;
  while (struct dirent *e = readdir(dir))
    if (e->d_name[0] != '.') names.push_back(e->d_name);  // also skips .gitkeep
  closedir(dir);
  std::sort(names.begin(), names.end());  // the same order on every machine
  for (const std::string &name : names) collect(path + "/" + name, files);
}

int main(int argc, char **argv) {
  for (int sig : {SIGILL, SIGTRAP, SIGABRT}) signal(sig, name_the_input);
  std::vector<std::string> files;
  for (int i = 1; i < argc; i++) collect(argv[i], files);
  for (const std::string &file : files) {
    std::ifstream in(file, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.eof() && in.fail()) {
      std::fprintf(stderr, "%s: cannot read\n", file.c_str());
      return 2;
    }
    replaying = file.c_str();
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
  }
  std::printf("%zu inputs replayed\n", files.size());
  return 0;
}
