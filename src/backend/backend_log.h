/* Log of the backend library: to the file named by APIR_LLAMA_CPP_LOG_TO_FILE (appended),
 * else stderr. The host ggml's own log goes to the same place while a context is live. */
#ifndef APIR_BACKEND_LOG_H
#define APIR_BACKEND_LOG_H

/* first context opens the log and installs the ggml log callback; the last one undoes it */
void backend_log_acquire(void);
void backend_log_release(void);

void backend_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
