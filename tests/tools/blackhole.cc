// A TCP listener whose accept queue is full and never drained: connections to it neither succeed
// nor fail, they hang in SYN_SENT. Lets tests exercise connect timeouts on loopback, where a closed
// port would refuse at once. Prints its port, then waits to be killed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>

int main() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(fd, 0) != 0) return 1;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  // Fill the accept queue (backlog 0 holds one) with connections nobody accepts.
  for (int i = 0; i < 3; ++i) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    fcntl(c, F_SETFL, O_NONBLOCK);
    connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    usleep(50 * 1000);
  }
  std::printf("%d\n", ntohs(addr.sin_port));
  std::fflush(stdout);
  pause();
}
