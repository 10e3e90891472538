-- One database per subgraph (the services also create theirs on start if missing).
CREATE DATABASE crm_auth;
CREATE DATABASE crm_customer;
CREATE DATABASE crm_sales_activity;
CREATE DATABASE crm_opportunity;
CREATE DATABASE crm_analytics;
