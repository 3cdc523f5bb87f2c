/* The status page's HTML (self-contained: inline CSS and JS, no CDN). */
#ifndef PLX_STATUS_PAGE_H
#define PLX_STATUS_PAGE_H

extern const char plx_status_page_html[];

#endif
