/*
 * pst_metrics_http.h -- the HTTP/1.1 responder of metrics_listen
 * (pst_metrics_http.c): the exposition of the counters (pst_metrics.h)
 * on the event loop of the queue process.
 */

#ifndef PST_METRICS_HTTP_H
#define PST_METRICS_HTTP_H

/* The HTTP responder (pst_metrics_http.c).  Master: bind metrics_listen
 * (kept over reloads while the address does not change); the queue
 * process serves it from its loop and stops on a graceful stop. */
int pst_metrics_listen(pst_cycle_t *cycle);
void pst_metrics_close(void);
int pst_metrics_serve(pst_cycle_t *cycle);
void pst_metrics_stop(void);

#endif /* PST_METRICS_HTTP_H */
